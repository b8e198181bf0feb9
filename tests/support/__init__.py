"""What the tests share, one job a module: object stores, images, archives, jobs, networks, output checks.

Plain functions and classes that tests import; the fixtures that have lifetimes stay in tests/conftest.py.
"""
