"""The customer data platform: identities and merges, orders from every channel, profiles, tags, segments."""
