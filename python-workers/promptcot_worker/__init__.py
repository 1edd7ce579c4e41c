"""promptcot_worker: the Python gRPC worker that holds a language model for the promptcot controller."""
