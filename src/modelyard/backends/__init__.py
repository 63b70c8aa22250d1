"""Storage backends, each behind a small interface and chosen by URI."""
