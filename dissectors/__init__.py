"""Pure, sans-I/O protocol decoders for DICOM network traffic.

Bytes (and timestamps, frame numbers) go in, events come out.  Nothing in this
package reads files or sockets, looks at the clock, prints or logs.
"""
