"""Everything between a user's annotation files and a padded batch."""
