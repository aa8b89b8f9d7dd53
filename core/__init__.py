"""The application core: the case record (eventsourcing application), the contract, the
personal-data mapper and the keystore. It talks to storage; the domain does not."""
