"""Encryption of the backup folder's files with age (the format: https://age-encryption.org/v1), and this
install's keys: :mod:`.age` seals and opens bytes, files and short texts; :mod:`.keys` keeps identities in
the OS keyring, or in a private file where there is none."""
