"""State tables by domain (incidents, alerts, changes, investigations, approvals, users, drills...).

All share `firebreak.state.base.Base`; `firebreak.state.tables` imports every one of them.
"""
