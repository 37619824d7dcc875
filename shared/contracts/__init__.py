"""Event contracts: the canonical events of samenveilig, their topics and their envelope."""
