"""Pipeline definitions: parsing and validating the Argo Workflow manifests that kfp 1.8 compiles."""
