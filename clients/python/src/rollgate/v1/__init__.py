"""Generated from proto/rollgate/v1 by scripts/generate-clients.sh (grpcio-tools==1.85.1). Do not edit."""
