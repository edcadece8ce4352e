"""OAuth tokens: consent (PKCE + signed state), encrypted storage and single-flight refresh."""
