// Package deploycheck holds no code, only tests: they check the deployment
// files at the root of the repository (docker-compose.yml, .env.example,
// Dockerfile, .dockerignore) against the code they deploy: the settings
// table (config.Settings()), the binaries of cmd/, the nats-server
// configuration of deploy/nats. The machine that runs the tests has no
// Docker daemon, so the files are read with compose-spec/compose-go, the
// loader of docker compose itself, and the nats-server's own configuration
// parser; what only a daemon would show is listed in docs/operations.md,
// "Deploy with Docker Compose".
package deploycheck
