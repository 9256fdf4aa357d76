"""The CCPD file-name tables (from the CCPD README), kept in one place for every module that reads or writes
CCPD names. Field 5 of a CCPD name lists one index per character: provinces[i0], alphabets[i1], ads[i2...];
'O' in a table stands for "no character" (CCPD's plates never use the letter O).
"""
PROVINCES = ["皖", "沪", "津", "渝", "冀", "晋", "蒙", "辽", "吉", "黑", "苏", "浙", "京", "闽", "赣", "鲁", "豫", "鄂",
             "湘", "粤", "桂", "琼", "川", "贵", "云", "藏", "陕", "甘", "青", "宁", "新", "警", "学", "O"]
ALPHABETS = ["A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "Q", "R", "S", "T", "U", "V",
             "W", "X", "Y", "Z", "O"]
ADS = ["A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "Q", "R", "S", "T", "U", "V", "W",
       "X", "Y", "Z", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "O"]
NO_CHAR = "O"


def plate_to_indices(text):
    """'皖A12345' -> [0, 0, 25, 26, 27, 28, 29]; ValueError for a character the tables lack."""
    tables = [PROVINCES, ALPHABETS] + [ADS] * (len(text) - 2)
    try:
        return [table.index(c) for table, c in zip(tables, text)]
    except ValueError:
        raise ValueError(f"{text!r} cannot be written with the CCPD tables") from None


def indices_to_plate(indices):
    """[0, 0, 25, 26, 27, 28, 29] -> '皖A12345' (IndexError for an index outside the tables)."""
    tables = [PROVINCES, ALPHABETS] + [ADS] * (len(indices) - 2)
    return "".join(c for c in (table[int(i)] for table, i in zip(tables, indices)) if c != NO_CHAR)
