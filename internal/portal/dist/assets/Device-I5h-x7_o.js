import{j as e,d as r}from"./index-BtJ4-ujf.js";function i(){return e.jsx(r,{order:2,children:"Device"})}export{i as default};
