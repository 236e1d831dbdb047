"""Infrastructure every stage uses: settings, parameters, the artifact store, ids, errors, fingerprints, the
stage skeleton and the per-process runtime."""
