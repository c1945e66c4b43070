"""Running steps: the step launcher (host processes with private paths) and the artifact store.

Nothing outside this package knows how a step is run; the engine talks to `StepLauncher` and
`ArtifactStore` only.
"""
