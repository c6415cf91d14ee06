"""The admin web dashboard under /admin: server-rendered pages over billing/dashboard.py and the same domain
functions the admin API calls; sessions and roles from billing/admin_access.py."""
