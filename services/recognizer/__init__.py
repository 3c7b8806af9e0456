"""The recognizer service: a CNN trained on MNIST, served with LiteRT (see model.py)."""
