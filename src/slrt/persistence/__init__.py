"""Tamper-evident persistence: the eventsourcing library's recorders, plus a hash chain.

`Settings.eventsourcing_env()` names `slrt.persistence.sqlite` or
`slrt.persistence.postgres` as the library's PERSISTENCE_MODULE. Their application
recorders write one hash record per stored event in the same transaction as the
event (see ADR 0006 and `slrt.audit`).
"""
