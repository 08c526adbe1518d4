"""HTTP ingresses: wire formats clients speak, translated to and from the unified model."""
