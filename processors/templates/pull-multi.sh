docker pull "$VLLM_IMAGE"
docker pull "$HAPROXY_IMAGE"
