"""Who is asking: API tokens, users, gateways, and what each may see."""
