"""Post-mortems: the "learn" step, drafted from what the incident log already holds.

Nobody retypes facts: the draft is assembled from the incident, its alerts, the changes around it, the
investigator's report, the approval and its execution, the updates sent and the timeline. People then
edit the 5 Whys, check the wording is blameless, and publish; a published post-mortem feeds memory.
"""
