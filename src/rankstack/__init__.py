"""rankstack."""
