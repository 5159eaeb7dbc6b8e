"""What qa2 reads from the data: FITS headers and pixels, CASA tables through casatools.
"""
