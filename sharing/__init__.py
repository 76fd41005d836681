"""Share links, the redirect, QR posters, attribution, staff performance and commission."""
