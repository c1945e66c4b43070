"""kfp-backend: the Kubeflow Pipelines v1beta1 API, without Kubernetes."""

__version__ = "0.1.0"
