"""fleet build on the controller: the build context (a directory or a tar, filtered by .dockerignore, tarred
deterministically) and its upload to the build hosts."""
