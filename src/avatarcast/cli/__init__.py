"""The `avatarcast` command and its subcommands (`main.main` is the entry point)."""
