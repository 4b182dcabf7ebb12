"""The client SDK: what payment systems, reconciliation jobs and operators hold in their hands."""
