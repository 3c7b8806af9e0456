"""The end-to-end tests' stack (``stack``, ``http``, ``anonymous``) is in tests/conftest.py,
shared with tests/client so that one session starts one stack."""

from tests.conftest import E2E_KEYSPACE as KEYSPACE  # noqa: F401  (tests import it from here)
