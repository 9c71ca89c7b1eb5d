/**
 * Files the tests write (private keys among them) get the mode an operator's key directory should
 * have: signet refuses a private key file that other users may read (src/kms/file.ts), so a test
 * that writes a key with Node's default 0644 would otherwise be refused. Tests of that refusal
 * chmod their files explicitly. (Vitest runs test files in forked processes, where umask can be set.)
 */
process.umask(0o077);
