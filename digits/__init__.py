"""Code shared by the digits services: the generated gRPC contract (``digits.v1``) and the
plumbing every service needs the same way (configuration, logs, the gRPC server lifecycle)."""
