"""The synthetic doorstep: a scene renderer and scripted episodes with ground truth."""
