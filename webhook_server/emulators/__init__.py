"""Local stand-ins for the providers' servers, speaking their real protocols and signatures.

They power `ymds demo`, `ymds simulate` and the tests; the protocol knowledge they use comes
from the provider modules in billing/providers/.
"""
