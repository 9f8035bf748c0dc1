"""A backup on an rclone remote (``backupPath`` written ``rclone:REMOTE:PATH``): a local mirror that the
sync writes as it writes any folder, an upload after each commit that keeps the remote a valid backup at
every moment, and the one way readers reach another machine's folder there.

- :mod:`.site`: the mirror, and what keeps it this remote's (filled from the remote, compared with it,
  owner and writer lease read back); :meth:`~.site.RemoteSite.push` after a sync.
- :mod:`.diff`: what the remote lacks; :mod:`.push`: the upload's steps, in their order.
- :mod:`.ledger`: what the remote holds, as far as this computer knows.
- :mod:`.view`: a machine folder of the remote, downloaded for a reader.
- :mod:`.listing`: a remote listing, checked as untrusted input.

Import the module you need: this package loads nothing (``status`` reads a ledger without rclone's
client and its HTTP library).
"""
