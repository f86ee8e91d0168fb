"""``livecam batch``: whole archives of videos and images, in-process or on Ray Data, with a report.

``plan`` turns the inputs into jobs and output names; ``work`` runs one job through the viewer's
pipeline; ``local`` and ``ray_run`` run the jobs; ``store`` keeps their results exactly once;
``report`` writes report.html.
"""
