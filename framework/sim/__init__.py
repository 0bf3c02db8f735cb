"""The policy simulator: a load trace in, a timeline CSV, scores and a picture out.

``model`` (the 1-second world and Steward's production policy on its clock), ``traces`` (seeded
load shapes), ``baselines`` (HPA, KPA, marathon-lb-autoscale from their published algorithms),
``scoring`` (``autoscaling.md`` section 7.3), ``runner`` (one trace through all of them), ``plot``
and ``cli`` (``steward simulate``).
"""
