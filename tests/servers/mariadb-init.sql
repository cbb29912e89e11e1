-- Users and database the MySQL driver tests expect. Run as root by
-- tests/services.py (over the unix socket right after mariadbd starts) and by
-- the docker-compose "mariadb" service (/docker-entrypoint-initdb.d/).
INSTALL SONAME 'auth_ed25519';
CREATE DATABASE IF NOT EXISTS testdb;
CREATE USER 'native'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('nativepw');
CREATE USER 'edu'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('edpw');
GRANT ALL ON testdb.* TO 'native'@'%', 'edu'@'%';
