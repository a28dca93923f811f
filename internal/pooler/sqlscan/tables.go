// Code generated from MariaDB 10.11's help tables and information_schema.COLLATIONS; DO NOT EDIT.
// (TestBuiltinTables checks the collations against the running server.)

package sqlscan

// builtinNames are the names of MariaDB's built-in functions (and type
// names that take a length), from its help tables.
const builtinNames = `
ABS ACOS ADDDATE ADDTIME ADD_MONTHS AES_DECRYPT AES_ENCRYPT AREA ASBINARY ASCII ASIN ASTEXT
ASWKB ASWKT ATAN ATAN2 AVG BENCHMARK BIGINT BIN BINARY BINLOG_GTID_POS BIT BIT_AND BIT_COUNT
BIT_LENGTH BIT_OR BIT_XOR BLOB BOOL BOOLEAN BOUNDARY BUFFER CAST CEIL CEILING CENTROID CHAR
CHARACTER CHARACTER_LENGTH CHARSET CHAR_LENGTH CHR CLOB COALESCE COERCIBILITY COLLATION
COLUMN_ADD COLUMN_CHECK COLUMN_CREATE COLUMN_DELETE COLUMN_EXISTS COLUMN_GET COLUMN_JSON
COLUMN_LIST COMPRESS CONCAT CONCAT_WS CONNECTION_ID CONTAINS CONV CONVERT CONVERT_TZ CONVEXHULL
COS COT COUNT CRC32 CRC32C CROSSES CUME_DIST CURDATE CURRENT_DATE CURRENT_ROLE CURRENT_TIME
CURRENT_TIMESTAMP CURRENT_USER CURTIME DATABASE DATE DATEDIFF DATETIME DATE_ADD DATE_FORMAT
DATE_SUB DAY DAYNAME DAYOFMONTH DAYOFWEEK DAYOFYEAR DEC DECIMAL DECODE DECODE_HISTOGRAM
DECODE_ORACLE DEFAULT DEGREES DENSE_RANK DES_DECRYPT DES_ENCRYPT DIMENSION DISJOINT DIV
DOUBLE ELT ENCODE ENCRYPT ENDPOINT ENUM ENVELOPE EQUALS EXP EXPORT_SET EXTERIORRING EXTRACT
EXTRACTVALUE FIELD FIND_IN_SET FIRST_VALUE FIXED FLOAT FLOAT4 FLOAT8 FLOOR FORMAT FORMAT_BYTES
FORMAT_PICO_TIME FOUND_ROWS FROM_BASE64 FROM_DAYS FROM_UNIXTIME GEOMCOLLFROMTEXT GEOMCOLLFROMWKB
GEOMETRYCOLLECTION GEOMETRYCOLLECTIONFROMTEXT GEOMETRYCOLLECTIONFROMWKB GEOMETRYFROMTEXT
GEOMETRYFROMWKB GEOMETRYN GEOMETRYTYPE GEOMFROMTEXT GEOMFROMWKB GET_FORMAT GET_LOCK GLENGTH
GREATEST GROUP_CONCAT HEX HOUR IF IFNULL IN INET4 INET6 INET6_ATON INET6_NTOA INET_ATON
INET_NTOA INSERT INSTR INT INT1 INT2 INT3 INT4 INT8 INTEGER INTERIORRINGN INTERSECTS
INTERVAL IS ISCLOSED ISEMPTY ISNULL ISRING ISSIMPLE IS_FREE_LOCK IS_IPV4 IS_IPV4_COMPAT
IS_IPV4_MAPPED IS_IPV6 IS_USED_LOCK JSON_ARRAY JSON_ARRAYAGG JSON_ARRAY_APPEND JSON_ARRAY_INSERT
JSON_ARRAY_INTERSECT JSON_COMPACT JSON_CONTAINS JSON_CONTAINS_PATH JSON_DEPTH JSON_DETAILED
JSON_EQUALS JSON_EXISTS JSON_EXTRACT JSON_INSERT JSON_KEYS JSON_KEY_VALUE JSON_LENGTH JSON_LOOSE
JSON_MERGE JSON_MERGE_PATCH JSON_MERGE_PRESERVE JSON_NORMALIZE JSON_OBJECT JSON_OBJECTAGG
JSON_OBJECT_FILTER_KEYS JSON_OBJECT_TO_ARRAY JSON_OVERLAPS JSON_PRETTY JSON_QUERY JSON_QUOTE
JSON_REMOVE JSON_REPLACE JSON_SCHEMA_VALID JSON_SEARCH JSON_SET JSON_TABLE JSON_TYPE JSON_UNQUOTE
JSON_VALID JSON_VALUE KDF LAG LASTVAL LAST_DAY LAST_INSERT_ID LAST_VALUE LCASE LEAD LEAST LEFT
LENGTH LENGTHB LIKE LINEFROMTEXT LINEFROMWKB LINESTRING LINESTRINGFROMTEXT LINESTRINGFROMWKB LN
LOAD_FILE LOCALTIME LOCALTIMESTAMP LOCATE LOG LOG10 LOG2 LONGBLOB LONGTEXT LOWER LPAD LTRIM
MAKEDATE MAKETIME MAKE_SET MASTER_GTID_WAIT MASTER_POS_WAIT MAX MBRCONTAINS MBRCOVEREDBY
MBRDISJOINT MBREQUAL MBRINTERSECTS MBROVERLAPS MBRTOUCHES MBRWITHIN MD5 MEDIAN MEDIUMBLOB
MEDIUMINT MEDIUMTEXT MICROSECOND MID MIDDLEINT MIN MINUTE MLINEFROMTEXT MLINEFROMWKB MOD MONTH
MONTHNAME MONTHS_BETWEEN MPOINTFROMTEXT MPOINTFROMWKB MPOLYFROMTEXT MPOLYFROMWKB MULTILINESTRING
MULTILINESTRINGFROMTEXT MULTILINESTRINGFROMWKB MULTIPOINT MULTIPOINTFROMTEXT MULTIPOINTFROMWKB
MULTIPOLYGON MULTIPOLYGONFROMTEXT MULTIPOLYGONFROMWKB NAME_CONST NATURAL_SORT_KEY NCHAR NEXTVAL
NOW NTH_VALUE NTILE NULLIF NUMBER NUMERIC NUMGEOMETRIES NUMINTERIORRINGS NUMPOINTS NVL NVL2
OCT OCTET_LENGTH OLD_PASSWORD OLD_VALUE ORD OVERLAPS PARENTHESES PASSWORD PERCENTILE_CONT
PERCENTILE_DISC PERCENT_RANK PERIOD_ADD PERIOD_DIFF PI POINT POINTFROMTEXT POINTFROMWKB POINTN
POINTONSURFACE POLYFROMTEXT POLYFROMWKB POLYGON POLYGONFROMTEXT POLYGONFROMWKB POSITION POW
POWER QUARTER QUOTE RADIANS RAND RANDOM_BYTES RANK RAW REAL REGEXP REGEXP_INSTR REGEXP_REPLACE
REGEXP_SUBSTR RELEASE_ALL_LOCKS RELEASE_LOCK REPEAT REPLACE REVERSE RIGHT RLIKE ROUND ROW ROWNUM
ROW_COUNT ROW_NUMBER RPAD RTRIM SCHEMA SECOND SEC_TO_TIME SESSION_USER SETVAL SFORMAT SHA1 SHA2
SIGN SIN SLEEP SMALLINT SOUNDEX SPACE SQL_TSI_YEAR SQRT SRID STARTPOINT STD STDDEV STDDEV_POP
STDDEV_SAMP STRCMP STR_TO_DATE ST_AREA ST_ASBINARY ST_ASGEOJSON ST_ASTEXT ST_ASWKB ST_ASWKT
ST_BOUNDARY ST_BUFFER ST_CENTROID ST_COLLECT ST_CONTAINS ST_CONVEXHULL ST_CROSSES ST_DIFFERENCE
ST_DIMENSION ST_DISJOINT ST_DISTANCE ST_DISTANCE_SPHERE ST_ENDPOINT ST_ENVELOPE ST_EQUALS
ST_EXTERIORRING ST_GEOHASH ST_GEOMCOLLFROMTEXT ST_GEOMCOLLFROMWKB ST_GEOMETRYCOLLECTIONFROMTEXT
ST_GEOMETRYCOLLECTIONFROMWKB ST_GEOMETRYFROMTEXT ST_GEOMETRYFROMWKB ST_GEOMETRYN ST_GEOMETRYTYPE
ST_GEOMFROMGEOJSON ST_GEOMFROMTEXT ST_GEOMFROMWKB ST_INTERIORRINGN ST_INTERSECTION ST_INTERSECTS
ST_ISCLOSED ST_ISEMPTY ST_ISRING ST_ISSIMPLE ST_ISVALID ST_LATFROMGEOHASH ST_LENGTH ST_LINEFROMTEXT
ST_LINEFROMWKB ST_LINESTRINGFROMTEXT ST_LINESTRINGFROMWKB ST_LONGFROMGEOHASH ST_MLINEFROMTEXT
ST_MPOINTFROMTEXT ST_MPOINTFROMWKB ST_MPOLYFROMTEXT ST_MPOLYFROMWKB ST_MULTILINESTRINGFROMTEXT
ST_MULTIPOINTFROMTEXT ST_MULTIPOINTFROMWKB ST_MULTIPOLYGONFROMTEXT ST_MULTIPOLYGONFROMWKB
ST_NUMGEOMETRIES ST_NUMINTERIORRINGS ST_NUMPOINTS ST_OVERLAPS ST_POINTFROMGEOHASH ST_POINTFROMTEXT
ST_POINTFROMWKB ST_POINTN ST_POINTONSURFACE ST_POLYFROMTEXT ST_POLYFROMWKB ST_POLYGONFROMTEXT
ST_POLYGONFROMWKB ST_RELATE ST_SIMPLIFY ST_SRID ST_STARTPOINT ST_SYMDIFFERENCE ST_TOUCHES
ST_UNION ST_VALIDATE ST_WITHIN ST_X ST_Y SUBDATE SUBSTR SUBSTRING SUBSTRING_INDEX SUBTIME
SUM SYSDATE SYSTEM_USER SYS_GUID TAN TEXT TIME TIMEDIFF TIMESTAMP TIMESTAMPADD TIMESTAMPDIFF
TIME_FORMAT TIME_TO_SEC TINYBLOB TINYINT TINYTEXT TOUCHES TO_BASE64 TO_CHAR TO_DATE TO_DAYS
TO_NUMBER TO_SECONDS TRIM TRIM_ORACLE TRUNC TRUNCATE UCASE UNCOMPRESS UNCOMPRESSED_LENGTH UNHEX
UNIX_TIMESTAMP UPDATEXML UPPER USER UTC_DATE UTC_TIME UTC_TIMESTAMP UUID UUID_SHORT UUID_V4
UUID_V7 VARBINARY VARCHAR VARCHAR2 VARCHARACTER VARIANCE VAR_POP VAR_SAMP VECTOR VEC_DISTANCE
VEC_DISTANCE_COSINE VEC_DISTANCE_EUCLIDEAN VEC_FROMTEXT VEC_TOTEXT VERSION WEEK WEEKDAY WEEKOFYEAR
WEIGHT_STRING WITHIN WSREP_LAST_SEEN_GTID WSREP_LAST_WRITTEN_GTID WSREP_SYNC_WAIT_UPTO_GTID X
XMLTYPE XOR Y YEAR YEARWEEK
`

// collations maps a handshake collation id to its character set and
// collation (MariaDB 10.11; ids above 255 cannot be sent in a handshake).
var collations = [256]struct{ charset, name string }{
	1:   {"big5", "big5_chinese_ci"},
	2:   {"latin2", "latin2_czech_cs"},
	3:   {"dec8", "dec8_swedish_ci"},
	4:   {"cp850", "cp850_general_ci"},
	5:   {"latin1", "latin1_german1_ci"},
	6:   {"hp8", "hp8_english_ci"},
	7:   {"koi8r", "koi8r_general_ci"},
	8:   {"latin1", "latin1_swedish_ci"},
	9:   {"latin2", "latin2_general_ci"},
	10:  {"swe7", "swe7_swedish_ci"},
	11:  {"ascii", "ascii_general_ci"},
	12:  {"ujis", "ujis_japanese_ci"},
	13:  {"sjis", "sjis_japanese_ci"},
	14:  {"cp1251", "cp1251_bulgarian_ci"},
	15:  {"latin1", "latin1_danish_ci"},
	16:  {"hebrew", "hebrew_general_ci"},
	18:  {"tis620", "tis620_thai_ci"},
	19:  {"euckr", "euckr_korean_ci"},
	20:  {"latin7", "latin7_estonian_cs"},
	21:  {"latin2", "latin2_hungarian_ci"},
	22:  {"koi8u", "koi8u_general_ci"},
	23:  {"cp1251", "cp1251_ukrainian_ci"},
	24:  {"gb2312", "gb2312_chinese_ci"},
	25:  {"greek", "greek_general_ci"},
	26:  {"cp1250", "cp1250_general_ci"},
	27:  {"latin2", "latin2_croatian_ci"},
	28:  {"gbk", "gbk_chinese_ci"},
	29:  {"cp1257", "cp1257_lithuanian_ci"},
	30:  {"latin5", "latin5_turkish_ci"},
	31:  {"latin1", "latin1_german2_ci"},
	32:  {"armscii8", "armscii8_general_ci"},
	33:  {"utf8mb3", "utf8mb3_general_ci"},
	34:  {"cp1250", "cp1250_czech_cs"},
	35:  {"ucs2", "ucs2_general_ci"},
	36:  {"cp866", "cp866_general_ci"},
	37:  {"keybcs2", "keybcs2_general_ci"},
	38:  {"macce", "macce_general_ci"},
	39:  {"macroman", "macroman_general_ci"},
	40:  {"cp852", "cp852_general_ci"},
	41:  {"latin7", "latin7_general_ci"},
	42:  {"latin7", "latin7_general_cs"},
	43:  {"macce", "macce_bin"},
	44:  {"cp1250", "cp1250_croatian_ci"},
	45:  {"utf8mb4", "utf8mb4_general_ci"},
	46:  {"utf8mb4", "utf8mb4_bin"},
	47:  {"latin1", "latin1_bin"},
	48:  {"latin1", "latin1_general_ci"},
	49:  {"latin1", "latin1_general_cs"},
	50:  {"cp1251", "cp1251_bin"},
	51:  {"cp1251", "cp1251_general_ci"},
	52:  {"cp1251", "cp1251_general_cs"},
	53:  {"macroman", "macroman_bin"},
	54:  {"utf16", "utf16_general_ci"},
	55:  {"utf16", "utf16_bin"},
	56:  {"utf16le", "utf16le_general_ci"},
	57:  {"cp1256", "cp1256_general_ci"},
	58:  {"cp1257", "cp1257_bin"},
	59:  {"cp1257", "cp1257_general_ci"},
	60:  {"utf32", "utf32_general_ci"},
	61:  {"utf32", "utf32_bin"},
	62:  {"utf16le", "utf16le_bin"},
	63:  {"binary", "binary"},
	64:  {"armscii8", "armscii8_bin"},
	65:  {"ascii", "ascii_bin"},
	66:  {"cp1250", "cp1250_bin"},
	67:  {"cp1256", "cp1256_bin"},
	68:  {"cp866", "cp866_bin"},
	69:  {"dec8", "dec8_bin"},
	70:  {"greek", "greek_bin"},
	71:  {"hebrew", "hebrew_bin"},
	72:  {"hp8", "hp8_bin"},
	73:  {"keybcs2", "keybcs2_bin"},
	74:  {"koi8r", "koi8r_bin"},
	75:  {"koi8u", "koi8u_bin"},
	77:  {"latin2", "latin2_bin"},
	78:  {"latin5", "latin5_bin"},
	79:  {"latin7", "latin7_bin"},
	80:  {"cp850", "cp850_bin"},
	81:  {"cp852", "cp852_bin"},
	82:  {"swe7", "swe7_bin"},
	83:  {"utf8mb3", "utf8mb3_bin"},
	84:  {"big5", "big5_bin"},
	85:  {"euckr", "euckr_bin"},
	86:  {"gb2312", "gb2312_bin"},
	87:  {"gbk", "gbk_bin"},
	88:  {"sjis", "sjis_bin"},
	89:  {"tis620", "tis620_bin"},
	90:  {"ucs2", "ucs2_bin"},
	91:  {"ujis", "ujis_bin"},
	92:  {"geostd8", "geostd8_general_ci"},
	93:  {"geostd8", "geostd8_bin"},
	94:  {"latin1", "latin1_spanish_ci"},
	95:  {"cp932", "cp932_japanese_ci"},
	96:  {"cp932", "cp932_bin"},
	97:  {"eucjpms", "eucjpms_japanese_ci"},
	98:  {"eucjpms", "eucjpms_bin"},
	99:  {"cp1250", "cp1250_polish_ci"},
	101: {"utf16", "utf16_unicode_ci"},
	102: {"utf16", "utf16_icelandic_ci"},
	103: {"utf16", "utf16_latvian_ci"},
	104: {"utf16", "utf16_romanian_ci"},
	105: {"utf16", "utf16_slovenian_ci"},
	106: {"utf16", "utf16_polish_ci"},
	107: {"utf16", "utf16_estonian_ci"},
	108: {"utf16", "utf16_spanish_ci"},
	109: {"utf16", "utf16_swedish_ci"},
	110: {"utf16", "utf16_turkish_ci"},
	111: {"utf16", "utf16_czech_ci"},
	112: {"utf16", "utf16_danish_ci"},
	113: {"utf16", "utf16_lithuanian_ci"},
	114: {"utf16", "utf16_slovak_ci"},
	115: {"utf16", "utf16_spanish2_ci"},
	116: {"utf16", "utf16_roman_ci"},
	117: {"utf16", "utf16_persian_ci"},
	118: {"utf16", "utf16_esperanto_ci"},
	119: {"utf16", "utf16_hungarian_ci"},
	120: {"utf16", "utf16_sinhala_ci"},
	121: {"utf16", "utf16_german2_ci"},
	122: {"utf16", "utf16_croatian_mysql561_ci"},
	123: {"utf16", "utf16_unicode_520_ci"},
	124: {"utf16", "utf16_vietnamese_ci"},
	128: {"ucs2", "ucs2_unicode_ci"},
	129: {"ucs2", "ucs2_icelandic_ci"},
	130: {"ucs2", "ucs2_latvian_ci"},
	131: {"ucs2", "ucs2_romanian_ci"},
	132: {"ucs2", "ucs2_slovenian_ci"},
	133: {"ucs2", "ucs2_polish_ci"},
	134: {"ucs2", "ucs2_estonian_ci"},
	135: {"ucs2", "ucs2_spanish_ci"},
	136: {"ucs2", "ucs2_swedish_ci"},
	137: {"ucs2", "ucs2_turkish_ci"},
	138: {"ucs2", "ucs2_czech_ci"},
	139: {"ucs2", "ucs2_danish_ci"},
	140: {"ucs2", "ucs2_lithuanian_ci"},
	141: {"ucs2", "ucs2_slovak_ci"},
	142: {"ucs2", "ucs2_spanish2_ci"},
	143: {"ucs2", "ucs2_roman_ci"},
	144: {"ucs2", "ucs2_persian_ci"},
	145: {"ucs2", "ucs2_esperanto_ci"},
	146: {"ucs2", "ucs2_hungarian_ci"},
	147: {"ucs2", "ucs2_sinhala_ci"},
	148: {"ucs2", "ucs2_german2_ci"},
	149: {"ucs2", "ucs2_croatian_mysql561_ci"},
	150: {"ucs2", "ucs2_unicode_520_ci"},
	151: {"ucs2", "ucs2_vietnamese_ci"},
	159: {"ucs2", "ucs2_general_mysql500_ci"},
	160: {"utf32", "utf32_unicode_ci"},
	161: {"utf32", "utf32_icelandic_ci"},
	162: {"utf32", "utf32_latvian_ci"},
	163: {"utf32", "utf32_romanian_ci"},
	164: {"utf32", "utf32_slovenian_ci"},
	165: {"utf32", "utf32_polish_ci"},
	166: {"utf32", "utf32_estonian_ci"},
	167: {"utf32", "utf32_spanish_ci"},
	168: {"utf32", "utf32_swedish_ci"},
	169: {"utf32", "utf32_turkish_ci"},
	170: {"utf32", "utf32_czech_ci"},
	171: {"utf32", "utf32_danish_ci"},
	172: {"utf32", "utf32_lithuanian_ci"},
	173: {"utf32", "utf32_slovak_ci"},
	174: {"utf32", "utf32_spanish2_ci"},
	175: {"utf32", "utf32_roman_ci"},
	176: {"utf32", "utf32_persian_ci"},
	177: {"utf32", "utf32_esperanto_ci"},
	178: {"utf32", "utf32_hungarian_ci"},
	179: {"utf32", "utf32_sinhala_ci"},
	180: {"utf32", "utf32_german2_ci"},
	181: {"utf32", "utf32_croatian_mysql561_ci"},
	182: {"utf32", "utf32_unicode_520_ci"},
	183: {"utf32", "utf32_vietnamese_ci"},
	192: {"utf8mb3", "utf8mb3_unicode_ci"},
	193: {"utf8mb3", "utf8mb3_icelandic_ci"},
	194: {"utf8mb3", "utf8mb3_latvian_ci"},
	195: {"utf8mb3", "utf8mb3_romanian_ci"},
	196: {"utf8mb3", "utf8mb3_slovenian_ci"},
	197: {"utf8mb3", "utf8mb3_polish_ci"},
	198: {"utf8mb3", "utf8mb3_estonian_ci"},
	199: {"utf8mb3", "utf8mb3_spanish_ci"},
	200: {"utf8mb3", "utf8mb3_swedish_ci"},
	201: {"utf8mb3", "utf8mb3_turkish_ci"},
	202: {"utf8mb3", "utf8mb3_czech_ci"},
	203: {"utf8mb3", "utf8mb3_danish_ci"},
	204: {"utf8mb3", "utf8mb3_lithuanian_ci"},
	205: {"utf8mb3", "utf8mb3_slovak_ci"},
	206: {"utf8mb3", "utf8mb3_spanish2_ci"},
	207: {"utf8mb3", "utf8mb3_roman_ci"},
	208: {"utf8mb3", "utf8mb3_persian_ci"},
	209: {"utf8mb3", "utf8mb3_esperanto_ci"},
	210: {"utf8mb3", "utf8mb3_hungarian_ci"},
	211: {"utf8mb3", "utf8mb3_sinhala_ci"},
	212: {"utf8mb3", "utf8mb3_german2_ci"},
	213: {"utf8mb3", "utf8mb3_croatian_mysql561_ci"},
	214: {"utf8mb3", "utf8mb3_unicode_520_ci"},
	215: {"utf8mb3", "utf8mb3_vietnamese_ci"},
	223: {"utf8mb3", "utf8mb3_general_mysql500_ci"},
	224: {"utf8mb4", "utf8mb4_unicode_ci"},
	225: {"utf8mb4", "utf8mb4_icelandic_ci"},
	226: {"utf8mb4", "utf8mb4_latvian_ci"},
	227: {"utf8mb4", "utf8mb4_romanian_ci"},
	228: {"utf8mb4", "utf8mb4_slovenian_ci"},
	229: {"utf8mb4", "utf8mb4_polish_ci"},
	230: {"utf8mb4", "utf8mb4_estonian_ci"},
	231: {"utf8mb4", "utf8mb4_spanish_ci"},
	232: {"utf8mb4", "utf8mb4_swedish_ci"},
	233: {"utf8mb4", "utf8mb4_turkish_ci"},
	234: {"utf8mb4", "utf8mb4_czech_ci"},
	235: {"utf8mb4", "utf8mb4_danish_ci"},
	236: {"utf8mb4", "utf8mb4_lithuanian_ci"},
	237: {"utf8mb4", "utf8mb4_slovak_ci"},
	238: {"utf8mb4", "utf8mb4_spanish2_ci"},
	239: {"utf8mb4", "utf8mb4_roman_ci"},
	240: {"utf8mb4", "utf8mb4_persian_ci"},
	241: {"utf8mb4", "utf8mb4_esperanto_ci"},
	242: {"utf8mb4", "utf8mb4_hungarian_ci"},
	243: {"utf8mb4", "utf8mb4_sinhala_ci"},
	244: {"utf8mb4", "utf8mb4_german2_ci"},
	245: {"utf8mb4", "utf8mb4_croatian_mysql561_ci"},
	246: {"utf8mb4", "utf8mb4_unicode_520_ci"},
	247: {"utf8mb4", "utf8mb4_vietnamese_ci"},
}

// defaultCollations maps a character set to its default collation.
var defaultCollations = map[string]string{
	"big5":     "big5_chinese_ci",
	"dec8":     "dec8_swedish_ci",
	"cp850":    "cp850_general_ci",
	"hp8":      "hp8_english_ci",
	"koi8r":    "koi8r_general_ci",
	"latin1":   "latin1_swedish_ci",
	"latin2":   "latin2_general_ci",
	"swe7":     "swe7_swedish_ci",
	"ascii":    "ascii_general_ci",
	"ujis":     "ujis_japanese_ci",
	"sjis":     "sjis_japanese_ci",
	"hebrew":   "hebrew_general_ci",
	"tis620":   "tis620_thai_ci",
	"euckr":    "euckr_korean_ci",
	"koi8u":    "koi8u_general_ci",
	"gb2312":   "gb2312_chinese_ci",
	"greek":    "greek_general_ci",
	"cp1250":   "cp1250_general_ci",
	"gbk":      "gbk_chinese_ci",
	"latin5":   "latin5_turkish_ci",
	"armscii8": "armscii8_general_ci",
	"utf8mb3":  "utf8mb3_general_ci",
	"ucs2":     "ucs2_general_ci",
	"cp866":    "cp866_general_ci",
	"keybcs2":  "keybcs2_general_ci",
	"macce":    "macce_general_ci",
	"macroman": "macroman_general_ci",
	"cp852":    "cp852_general_ci",
	"latin7":   "latin7_general_ci",
	"utf8mb4":  "utf8mb4_general_ci",
	"cp1251":   "cp1251_general_ci",
	"utf16":    "utf16_general_ci",
	"utf16le":  "utf16le_general_ci",
	"cp1256":   "cp1256_general_ci",
	"cp1257":   "cp1257_general_ci",
	"utf32":    "utf32_general_ci",
	"binary":   "binary",
	"geostd8":  "geostd8_general_ci",
	"cp932":    "cp932_japanese_ci",
	"eucjpms":  "eucjpms_japanese_ci",
}
