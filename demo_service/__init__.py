"""The demo SOAP echo service, protected by RelyingPartyMiddleware."""
