"""Production performance: OEE and its losses after ISO 22400, from rollups per machine and
quarter hour kept as events arrive."""
