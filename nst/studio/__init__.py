"""The studio: ``nst serve`` opens a web page to upload a photo and paintings, tune a run,
watch it live, stop, continue, download, and look back over past runs. Its jobs are ordinary
runs made through nst.run.engine, in ``logs/studio/version_N``."""
