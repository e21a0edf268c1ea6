"""Operations on users, groups and logins shared by the REST API, the pages and the culler."""
