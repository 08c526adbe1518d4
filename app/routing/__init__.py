"""Model name → the deployments that may answer it, in the order to try them."""
