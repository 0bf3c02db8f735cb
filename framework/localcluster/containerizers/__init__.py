"""Containerizers of the embedded local cluster: how an agent turns a TaskInfo into something running."""
