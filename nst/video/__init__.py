"""Video: frames painted one after another, each tied to the ones before by optical flow
(Ruder, Dosovitskiy & Brox 2016). ``python cli.py video`` and ``nst.stylize_video``; see nst.video.run."""
