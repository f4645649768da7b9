"""Published weights, from a file somewhere to a loaded network.

* :mod:`.fetch`: the mirror, the verified cache, resumable downloads and Hugging Face Hub files; a file no published
  hash vouches for is trusted (its sha256 recorded) only after it loaded (:func:`.fetch.trust_after_load`);
* :mod:`.unpickle`: reading a torch checkpoint in bounded memory without running anything in it;
* :mod:`.formats`: where each family's file holds the weights, strict loading with a key diff, atomic saving.
"""
