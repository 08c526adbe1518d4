"""The unified internal model: every ingress and every provider translates to and from these."""
