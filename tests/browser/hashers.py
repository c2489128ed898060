from django.contrib.auth.hashers import PBKDF2PasswordHasher


class FastPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """Same algorithm name, few iterations: the live server (default hashers) verifies these
    hashes with the iteration count stored in them, and the test set-up stays fast."""

    iterations = 1000
