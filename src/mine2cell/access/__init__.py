"""Who may read the detail tier and who may have the service sign for them: access tokens."""
