"""Test helpers shipped with Junction, for its own tests and for third-party plugin packages:
fake upstream servers on loopback, a real ``junction serve`` process, the conformance kit."""
