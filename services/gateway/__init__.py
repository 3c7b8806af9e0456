"""The HTTP gateway: the public face of digits, in front of the two gRPC services."""
