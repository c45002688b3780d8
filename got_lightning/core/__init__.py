"""What every room of the package stands on: the user-error base, atomic files, option groups and
optional imports. Nothing here imports torch, Lightning or another got_lightning package."""
