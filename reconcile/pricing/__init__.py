"""The contract (rules) and re-pricing every consume log the way new-api billed it."""
