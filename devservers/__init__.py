"""Development stand-ins for the external services the fleet talks to (test and demo use only)."""
